"""audioprobe: what does a text-only LLM know about sound?"""

__version__ = "0.1.0"

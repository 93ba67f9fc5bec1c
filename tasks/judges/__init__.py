"""Judges: the audio gate, FAD, CLAP / offline 5-way classification, pitch and speech.

Heavy dependencies (torch, transformers, torchcrepe, pocketsphinx) are imported inside the functions
that need them, so `import tasks.judges` stays cheap.
"""

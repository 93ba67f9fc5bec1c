"""The tables of each report section, one module per section; tasks.report.tables assembles them."""

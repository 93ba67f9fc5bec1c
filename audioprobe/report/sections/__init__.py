"""The tables of each report section, one module per section; audioprobe.report.tables assembles them."""

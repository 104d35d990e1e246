"""Game KPIs: daily aggregates per game and UTC day, kept apart from the log, and the report that reads them."""

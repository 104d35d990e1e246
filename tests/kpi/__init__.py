"""Tests of the game KPIs: aggregates, kpi_report, the admin page, the warehouse views."""

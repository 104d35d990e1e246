"""Django admin for exchange rates (browse and edit the daily rate table)."""

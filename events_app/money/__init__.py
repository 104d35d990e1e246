"""Money: currencies, exchange rates and revenue conversion."""

"""Reference code lists: ISO 3166-1 countries and ISO 4217 currencies, from pycountry."""

import pycountry

COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)
CURRENCY_CODES = frozenset(currency.alpha_3 for currency in pycountry.currencies)

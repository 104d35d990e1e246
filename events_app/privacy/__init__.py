"""Privacy and retention: erasing players, purging what is older than it needs to be."""

"""Process health: leadership (one active daemon per database) and riding out database outages."""

"""Building blocks of the metanetworks, one layer per file."""

"""Data rights and duties of the charter: retention (C7), portability (C8), transparency
(C6), reporting of illicit content (C9) and aggregated statistics (C12)."""

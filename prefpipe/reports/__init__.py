"""Reports people look at: plots, markdown tables for the Dagster UI, the judge report card, and one
self-contained HTML page per batch."""

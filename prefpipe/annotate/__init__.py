"""The annotators' web app and its operational store.

People label pairs in prefpipe's own app (FastAPI served by uvicorn). What they submit lives in a
SQLite file in WAL mode under the data folder (`settings.annotation_store_path()`), shared by the
app, the CLI and the Dagster assets in short transactions. The app never opens the DuckDB
warehouse: the human_queue asset writes tasks here and the human_annotations asset reads answers
back.
"""

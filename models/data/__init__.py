"""Raw data sets that dlforge pipelines ingest."""

"""The database: models, engine and sessions, the pipeline's queries, read views for people and JSON.

Nothing here decides; it stores and reads.
"""

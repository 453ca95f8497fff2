"""Ingestion, chunking, embeddings, Chroma storage and hybrid retrieval."""

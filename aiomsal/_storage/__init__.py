"""The storage layer: read-through/write-through persistence and the file and Redis storages."""

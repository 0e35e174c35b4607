"""The retry engine in rooms by job: running (one key), loops (background), health."""

// dashboard script (in progress)

"""What a run shows: the renderer, the check's sections, metrics and the HTML page."""

"""The small core: map formats, filed layouts, findings, the summary, and the rules' Python twins."""

"""The jobs page: one HTML page, its script and style, served by the plugin itself (nothing fetched elsewhere)."""

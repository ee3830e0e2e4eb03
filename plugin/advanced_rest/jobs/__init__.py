"""The plugin's own jobs engine, and one monitoring API over the core's jobs and ours."""

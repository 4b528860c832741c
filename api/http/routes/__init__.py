"""One router per resource: studies (the JSON API), pages (HTML and static files), health."""

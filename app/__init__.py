"""PitWall web: the Dash app, the Flask server, the REST API and the WebSocket, on one server."""

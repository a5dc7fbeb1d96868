"""Run the stack under Docker Compose: docker-compose.yml with the images built from this repository."""

"""How things are shown to a person: the preview's cards, JSON and page."""

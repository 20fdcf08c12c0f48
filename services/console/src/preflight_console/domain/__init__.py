"""What the console decides by itself: sessions, time left, plots, previews."""

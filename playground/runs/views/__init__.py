"""The runs app's views, one module per idea; urls.py names them."""

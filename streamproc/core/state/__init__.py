"""The state tables' values (contacts, known users) and the pure functions that update them."""

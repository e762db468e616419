"""Cloud providers behind one interface; implementations are picked by code."""

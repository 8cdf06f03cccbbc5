"""The corpus as the steps read it: meme filters, annotation texts, vectors of a space, runs."""

"""Algorithm 1: collection, relabeling, insertion, updates, evaluation."""

"""The stages of the request pipeline, one module each; ``serving/pipeline.py`` orders them."""

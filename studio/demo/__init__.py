"""The bundled default model's world: procedural scenes, their captions, an analyser that reads
generated images back, and the script that trains the model (`python -m studio.demo.train`).

`scenes` and `analyse` need only PIL and numpy; `train` needs torch and diffusers.
"""

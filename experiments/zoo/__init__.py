"""The bundled populations (one folder of agent folders each) and their export and held-out check."""

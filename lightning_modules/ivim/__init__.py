"""IVIM mapping: signal models, least-squares fits, IVIM-NET, simulators, Lightning modules and the bundle app."""

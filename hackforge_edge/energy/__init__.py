"""Energy and carbon accounting: meters (NVML, RAPL, Jetson INA3221, CPU estimate), grid
intensity and CO2, training-side accounting, strategy comparison.

Import from the submodules (``energy.meter``, ``energy.carbon``, ``energy.accounting``,
``energy.compare``); nothing heavy is imported here.
"""

__all__ = ["meter", "carbon", "accounting", "compare", "estimate"]

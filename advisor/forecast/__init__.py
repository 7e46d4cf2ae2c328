"""Forecasts on scipy: per-market price and capacity models, quantiles, availability curves, joint scenarios."""

from advisor.forecast.forecaster import Forecaster, hour_of_week
from advisor.forecast.models import CapacityModel, PriceModel

__all__ = ["CapacityModel", "Forecaster", "PriceModel", "hour_of_week"]

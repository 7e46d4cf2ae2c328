"""Forecasts on scipy: per-market price and capacity models, quantiles, availability curves, joint scenarios."""

from advisor.forecast.forecaster import Forecaster, hour_of_week
from advisor.forecast.models import CapacityModel, PostedPriceModel, PriceModel, RegimePriceModel, fit_price_model

__all__ = ["CapacityModel", "Forecaster", "PostedPriceModel", "PriceModel", "RegimePriceModel", "fit_price_model",
           "hour_of_week"]

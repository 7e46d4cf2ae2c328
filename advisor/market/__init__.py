"""A synthetic auction market: seeded generators for the embedded demo data and for tests."""

from advisor.market.demo import DEMO_MARKETS, demo_offers, demo_prices, write_demo
from advisor.market.synthetic import AuctionSpec, auction_path, cloud_spot_path

__all__ = ["DEMO_MARKETS", "AuctionSpec", "auction_path", "cloud_spot_path", "demo_offers", "demo_prices",
           "write_demo"]

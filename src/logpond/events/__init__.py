"""PostHog product-analytics events: capture decoding, person processing, autocapture elements."""

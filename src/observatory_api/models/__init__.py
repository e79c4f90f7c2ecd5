"""The model catalogue: known models, their list prices, and how usage is priced."""

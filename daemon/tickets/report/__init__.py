"""The shop's report: figures for a period (figures), what a period is (period), and its
renderings (render: JSON, CSV, text, HTML with table-drawn bar charts)."""

"""Small reusable reports: an HTML page of headings, text, tables and images, and matplotlib plots."""

from tamis.report.html import HtmlReport, markdown_table
from tamis.report.plots import bar_chart, curve_chart

__all__ = ["HtmlReport", "bar_chart", "curve_chart", "markdown_table"]

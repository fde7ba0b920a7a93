"""Local stand-ins for Mixpanel, Braze and Currents exports, used by the tests and the demo."""

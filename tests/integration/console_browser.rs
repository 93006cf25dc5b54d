//! The web console in headless Chromium through chromedriver.

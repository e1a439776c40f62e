"""`keeptrash report`: a markdown review of one revision against another, for a pull request."""

"""The Reddit adapter: comments and inbox mentions in, image posts and a linking reply out."""

# Keras fixtures write arrays as {"shape": [...], "values": [...]}, values in C (row-major)
# order; this rebuilds the R array with the same index meaning.
as_keras_array <- function(a) {
  shape <- unlist(a$shape)
  values <- as.numeric(unlist(a$values))
  if (length(shape) <= 1L) return(array(values, dim = max(1L, prod(shape))))
  aperm(array(values, rev(shape)), rev(seq_along(shape)))
}

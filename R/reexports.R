# Operators that keras3 scripts use, re-exported so that library(rustkeras)
# is enough: the pipe from magrittr and multiple assignment from zeallot.

#' Pipe operator
#'
#' See \code{magrittr::\link[magrittr:pipe]{\%>\%}} for details. Layers added
#' with `model %>% layer_dense(...)` modify `model` in place, as in keras3.
#'
#' @name %>%
#' @rdname pipe
#' @keywords internal
#' @export
#' @importFrom magrittr %>%
#' @usage lhs \%>\% rhs
#' @param lhs A value or the magrittr placeholder.
#' @param rhs A function call using the magrittr semantics.
#' @returns The result of calling `rhs(lhs)`.
NULL

#' Multiple assignment operator
#'
#' See \code{zeallot::\link[zeallot:operator]{\%<-\%}} for details. It unpacks
#' the lists that the data set functions return:
#' `c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()`.
#'
#' @name %<-%
#' @rdname multi-assign
#' @keywords internal
#' @export
#' @importFrom zeallot %<-%
#' @usage x \%<-\% value
#' @param x A name, or a call to `c()` of names (nested calls allowed), to
#'   assign to.
#' @param value A list or vector of values to assign.
#' @returns `value`, invisibly; called for its side effect of assigning the
#'   names in `x` in the calling environment.
#' @examples
#' c(a, c(b, d)) %<-% list(1, list(2, 3))
#' a + b + d
NULL

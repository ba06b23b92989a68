# Doxygen INPUT_FILTER for cio's headers: they use plain /* ... */ comments
# directly above each declaration (see CONTRIBUTING rules in docs/design.md).
# This turns them into Doxygen comments, so that any new header is picked up
# without /** */ markup:
#  - the file's first comment block documents the file (@file);
#  - a comment block that ends directly above a line of code documents the
#    declaration(s) that follow it; when several declarations follow without
#    a blank line, they form one member group sharing that comment;
#  - a comment after code on the same line ("int x; /* ... */") documents
#    that member (/**< ... */).
# Line numbers are kept (markers are added on existing lines).
# Usage: awk -f tools/doxygen-filter.awk header.h
# Print the collected run; a member group is closed on `next` (the line
# that ended the run: "" for end of file), never on a #define line.
function flush_run(next_line,   i) {
  if (nrun == 0) return next_line
  if (stmts >= 2) {
    run[1] = "/** @{ */ " run[1]
    next_line = (next_line ~ /^[ \t]*$/) ? "/** @} */" : "/** @} */ " next_line
  }
  for (i = 1; i <= nrun; i++) print run[i]
  nrun = 0
  return next_line
}
function count_stmts(line,   t) {
  # statements ending at brace depth 0 on this line
  t = line
  gsub(/\/\*.*\*\//, "", t)
  gsub(/"[^"]*"/, "", t)
  depth += gsub(/\{/, "{", t)
  depth -= gsub(/\}/, "}", t)
  if (depth <= 0 && t ~ /;[ \t]*$/ && t !~ /^[ \t]*#/) { stmts++; depth = 0 }
  if (t ~ /^#define/ && prev_cont == 0) stmts++
  prev_cont = (line ~ /\\[ \t]*$/)
}
BEGIN { seen_first = 0; incomment = 0; nrun = 0; collecting = 0 }
{
  line = $0
  if (infirst) {
    print line
    if (line ~ /\*\//) infirst = 0
    next
  }
  if (incomment) {
    cbuf[++nc] = line
    if (line ~ /\*\//) {
      incomment = 0
      pending = 1
    }
    next
  }
  if (pending) {
    # a comment block just ended: is it directly above code?
    pending = 0
    if (line ~ /^[ \t]*$/ || line ~ /^[ \t]*\/\*/ || line ~ /^#(endif|else|include)/ || line ~ /^#(ifndef|define) CIO_[A-Z_]*_H$/ || line ~ /^#ifdef __cplusplus/ || line ~ /^}/ || line ~ /^extern "C"/) {
      for (i = 1; i <= nc; i++) print cbuf[i]
      nc = 0
    } else {
      sub(/\/\*/, "/**", cbuf[1])
      for (i = 1; i <= nc; i++) run[++nrun] = cbuf[i]
      nc = 0
      collecting = 1; stmts = 0; depth = 0; prev_cont = 0
    }
  }
  if (collecting) {
    if (line ~ /^[ \t]*$/ || (depth <= 0 && line ~ /^[ \t]*(\/\*|})/)) {
      collecting = 0
      line = flush_run(line)
      if (line ~ /^\/\*\* @} \*\//) { # the group's end, then what ended the run
        sub(/^\/\*\* @} \*\/ ?/, "", line)
        if (line ~ /^[ \t]*$/) { print "/** @} */"; next }
        if (line ~ /^[ \t]*\/\*/) print "/** @} */" # one line more, before a comment
        else { print "/** @} */ " line; next }
      }
    } else {
      if (line ~ /[^ \t].*\/\*/ && line !~ /^[ \t]*\/\*/) sub(/\/\*/, "/**<", line)
      else if (depth > 0 && line ~ /^[ \t]*\/\*/) sub(/\/\*/, "/**", line) # a member's comment
      run[++nrun] = line
      count_stmts(line)
      next
    }
  }
  # a comment starting on its own line
  if (line ~ /^[ \t]*\/\*/) {
    nc = 0
    if (!seen_first) {
      seen_first = 1
      # "@file" alone on its line (it takes a name otherwise): one line more
      print "/** @file"
      sub(/\/\*/, " *", line)
      if (line ~ /\*\//) { print line; next }
      print line
      nc = 0
      infirst = 1
      next
    }
    cbuf[++nc] = line
    if (line ~ /\*\//) pending = 1; else incomment = 1
    next
  }
  # code with a trailing comment documents that member
  if (line ~ /[^ \t].*\/\*/) sub(/\/\*/, "/**<", line)
  print line
}
END {
  if (nc) for (i = 1; i <= nc; i++) print cbuf[i]
  last = flush_run("")
  if (last != "") print last
}

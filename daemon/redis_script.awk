# redis_script.awk: shrinks a Lua 5.1 file for shipping as the Redis script (see
# redis_script.lua). Outside quoted strings, comments go, and so do blanks, but for
# one where two words meet, and around "." and after "[" (a blank that separates
# "-" from "-" is kept too). Every line stays in place (a comment line becomes empty),
# so that line numbers in Redis's error messages are those of the source. Refuses long
# brackets ("[[", "[=[", "--[["), which a line-by-line reading cannot follow. The
# Makefile checks that the output compiles to the same bytecode as the input.
# Usage: awk -f daemon/redis_script.awk daemon/redis_script.lua > shipped.lua

function is_word(ch) {
    return ch ~ /[A-Za-z0-9_]/
}

# Returns 1 if a blank between a and b must stay.
function needs_blank(a, b) {
    return (is_word(a) && is_word(b)) || (a == "-" && b == "-") || a == "[" || a == "." ||
           b == "."
}

/\[=*\[/ {
    printf "%s:%d: long brackets are not supported here\n", FILENAME, FNR > "/dev/stderr"
    exit 1
}

{
    out = ""
    quote = ""
    blank = 0
    for (i = 1; i <= length($0); i++) {
        ch = substr($0, i, 1)
        if (quote != "") {
            out = out ch
            if (ch == "\\") {
                out = out substr($0, i + 1, 1)
                i++
            } else if (ch == quote) {
                quote = ""
            }
            continue
        }
        if (ch == " " || ch == "\t") {
            blank = 1
            continue
        }
        if (ch == "-" && substr($0, i + 1, 1) == "-")
            break
        if (blank && out != "" && needs_blank(substr(out, length(out), 1), ch))
            out = out " "
        blank = 0
        if (ch == "'" || ch == "\"")
            quote = ch
        out = out ch
    }
    print out
}

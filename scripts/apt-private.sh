# shellcheck shell=bash
# Sourced (not run) by scripts/setup-writers.sh and scripts/xen-lab.sh: apt-get
# pointed at a private sources list built from the Debian mirror the machine's own
# apt sources already name. Nothing is written under /etc/apt or /var/lib/apt/lists,
# and no mirror is named here.
#
#   debian_entry CODENAME          the machine's deb entries for CODENAME and its
#                                  -updates/-security/-backports suites, one
#                                  "URI|suite|components|signed-by" per line, in the
#                                  order apt reads them
#   apt_line URI SUITE COMPS SIGNED-BY
#                                  one sources.list line (component main at least)
#   apt_private_opts DIR           sets the array apt_opts: apt-get's options to read
#                                  DIR/sources.list and keep its lists in DIR/lists
#   suite_sources CODENAME TARGET  the sources.list lines of TARGET (another Debian
#                                  release, e.g. trixie) on the machine's own mirrors:
#                                  its entries for CODENAME, CODENAME-updates and
#                                  CODENAME-security with CODENAME replaced by TARGET

# The one-line (deb [opts] URI suite comps...) and deb822 (Types/URIs/Suites/
# Components/Signed-By/Enabled) sources: every deb entry whose suite is the codename
# or the codename's -updates, -security or -backports.
debian_entry() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v code="$1" '
            { sub(/#.*/, "") }
            $1 == "deb" {
                signed = ""; i = 2
                if ($2 ~ /^\[/) {
                    for (; i <= NF; i++) {
                        o = $i; gsub(/[][]/, "", o)
                        if (o ~ /^signed-by=/) { sub(/^signed-by=/, "", o); signed = o }
                        if ($i ~ /\]$/) { i++; break }
                    }
                }
                uri = $i; suite = $(i + 1); comps = ""
                for (j = i + 2; j <= NF; j++) comps = comps (comps ? " " : "") $j
                if (suite ~ ("^" code "(-[a-z]+)?$")) print uri "|" suite "|" comps "|" signed
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v code="$1" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") {
                    nu = split(uris, u, " "); ns = split(suites, s, " ")
                    for (a = 1; a <= nu; a++)
                        for (b = 1; b <= ns; b++)
                            if (s[b] ~ ("^" code "(-[a-z]+)?$")) print u[a] "|" s[b] "|" comps "|" signed
                }
                types = uris = suites = comps = signed = enabled = ""
            }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { next }  # a multi-line field continued (an inline key)
            {
                key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, ""); val = $0
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "signed-by") signed = (val ~ /^\//) ? val : ""
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }' "$f"
    done
}

apt_line() { # URI SUITE COMPONENTS SIGNED-BY
    local comps=$3
    case " $comps " in *" main "*) ;; *) comps="main" ;; esac
    echo "deb ${4:+[signed-by=$4] }$1 $2 $comps"
}

# shellcheck disable=SC2034 # apt_opts is for the caller
apt_private_opts() { # DIR
    apt_opts=(-o "Dir::Etc::sourcelist=$1/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::lists=$1/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
        -o APT::Get::List-Cleanup=0)
}

suite_sources() { # CODENAME TARGET
    local uri suite comps signed
    while IFS='|' read -r uri suite comps signed; do
        case "$suite" in
            "$1") apt_line "$uri" "$2" "$comps" "$signed" ;;
            "$1"-updates | "$1"-security) apt_line "$uri" "$2-${suite#"$1"-}" "$comps" "$signed" ;;
        esac
    done < <(debian_entry "$1")
}

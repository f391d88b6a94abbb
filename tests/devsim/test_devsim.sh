#!/bin/bash
# test_devsim.sh - devsim against a real SSH client, on loopback.
#
#   tests/devsim/test_devsim.sh DEVSIM [DEVSIM_CLIENT]
#
# Starts devsim with one device per type plus one per fault and one per
# real-device behaviour (device fields), in a scratch folder that a trap
# removes, logs in with devsim-client (libssh; built here with cc if not
# given), and checks prompts, paging, enable, echo, configs (each type's
# output equals --print-config once its volatile lines are gone), every
# fault and device field, exec channels, signals, and the loopback-only
# rule.  Ends with the concurrency figure: 200 sessions at once, each
# fetching a 20 KB config from a device with 50 ms latency.
#
# Output is TAP-like ("ok N - ...", "not ok N - ..."); exit 0 if all passed.
# DEVSIM_BENCH_SESSIONS / DEVSIM_BENCH_CONCURRENCY change the benchmark size;
# DEVSIM_TEST_KEEP=1 keeps the scratch folder (it is kept anyway on failure).

set -u

DEVSIM=${1:?usage: test_devsim.sh DEVSIM [DEVSIM_CLIENT]}
CLIENT=${2:-}
S=$(mktemp -d "${TMPDIR:-/tmp}/devsim-test.XXXXXX")
PIDS=()
FAILS=0
N=0

cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    sleep 0.2
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    if [ "$FAILS" -eq 0 ] && [ -z "${DEVSIM_TEST_KEEP:-}" ]; then
        rm -rf "$S"
    else
        echo "# scratch kept in $S"
    fi
}
trap cleanup EXIT

ok() {      # ok CONDITION-EXIT-CODE DESCRIPTION
    N=$((N + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $N - $2"
    else
        echo "not ok $N - $2"
        FAILS=$((FAILS + 1))
    fi
}

check() {   # check DESCRIPTION COMMAND... (passes when the command succeeds)
    local desc=$1
    shift
    "$@" >/dev/null 2>&1
    ok $? "$desc"
}

if [ -z "$CLIENT" ]; then
    CLIENT=$S/devsim-client
    # shellcheck disable=SC2046  # pkg-config's flags are meant to split
    cc -std=c11 -D_GNU_SOURCE -O2 -o "$CLIENT" "$(dirname "$0")/devsim_client.c" \
        $(pkg-config --cflags --libs libssh) -lpthread || { echo "Bail out! cannot build the client"; exit 1; }
fi

# ---- start devsim ----------------------------------------------------------

write_inventory() {     # write_inventory BASE
    local b=$1
    cat > "$S/inv.yaml" <<EOF
# one device per type, then one per fault
defaults:
  accounts:
    - {username: admin, password: admin-pw}
    - {username: backup, password: backup-pw}
  enable_secret: en-secret
  config_kb: 20
devices:
  - {name: ios, hostname: ios-r1, device_type: cisco_ios, port: $((b + 0))}
  - {name: xe, hostname: xe-r1, device_type: cisco_xe, port: $((b + 1))}
  - {name: nxos, hostname: nx-sw1, device_type: cisco_nxos, port: $((b + 2))}
  - {name: xr, hostname: xr-pe1, device_type: cisco_xr, port: $((b + 3))}
  - {name: eos, hostname: eos-sw1, device_type: arista_eos, port: $((b + 4))}
  - {name: junos, hostname: mx1, device_type: juniper_junos, port: $((b + 5))}
  - {name: asa, hostname: fw1, device_type: cisco_asa, port: $((b + 6))}
  - {name: panos, hostname: pa1, device_type: paloalto_panos, port: $((b + 7))}
  - {name: linux, hostname: srv1, device_type: linux, port: $((b + 8))}
  - {name: other, hostname: box1, device_type: acme_os, port: $((b + 9))}
  - {name: pager, hostname: pg1, port: $((b + 10)), config_kb: 4, privileged_login: true}
  - {name: reject, port: $((b + 11)), faults: {reject_auth: true}}
  - {name: hang-auth, port: $((b + 12)), faults: [hang_after_auth]}
  - {name: hang-mid, port: $((b + 13)), privileged_login: true, faults: [hang_mid_output]}
  - {name: disc-mid, port: $((b + 14)), privileged_login: true, faults: [disconnect_mid_output]}
  - {name: garbage, port: $((b + 15)), privileged_login: true, config_kb: 4, faults: [garbage]}
  - {name: banner, port: $((b + 16)), faults: [banner_prompts]}
  - {name: kbdint, port: $((b + 17)), faults: [kbdint_only]}
  - {name: trickle, port: $((b + 18)), privileged_login: true, faults: {trickle_ms: 2}}
  - {name: refuse, port: $((b + 19)), faults: {refuse_times: 2}}
  - {name: slowban, port: $((b + 20)), faults: {delay_banner_ms: 700}}
  - {name: latency, port: $((b + 21)), latency_ms: 300, privileged_login: true}
  - {name: rate, port: $((b + 22)), privileged_login: true, rate_bps: 40000}
  - {name: addr, listen: 127.3.0.1, port: $((b + 0)), device_type: arista_eos}
  - {name: rsa, port: $((b + 23)), host_key: rsa}
  - {name: perdev, port: $((b + 24)), host_key: per-device}
  - {name: exec, hostname: ex1, device_type: cisco_nxos, port: $((b + 25)), config_kb: 8}
  # the other platforms (the worker's rows), 8 KB configs
  - {name: t-cmw, hostname: cmw1, device_type: hp_comware, port: $((b + 26)), config_kb: 8}
  - {name: t-pc, hostname: pc1, device_type: hp_procurve, port: $((b + 27)), config_kb: 8}
  - {name: t-aos, hostname: aos1, device_type: aruba_os, port: $((b + 28)), config_kb: 8}
  - {name: t-hw, hostname: hw1, device_type: huawei, port: $((b + 29)), config_kb: 8}
  - {name: t-fg, hostname: FG-1, device_type: fortinet, port: $((b + 30)), config_kb: 8, page_lines: 10000}
  - {name: t-f5, hostname: f5a, device_type: f5_tmsh, port: $((b + 31)), config_kb: 8}
  - {name: t-os10, hostname: os10a, device_type: dell_os10, port: $((b + 32)), config_kb: 8}
  - {name: t-os6, hostname: os6a, device_type: dell_os6, port: $((b + 33)), config_kb: 8}
  - {name: t-os9, hostname: os9a, device_type: dell_os9, port: $((b + 34)), config_kb: 8}
  - {name: t-cx, hostname: cx1, device_type: aruba_aoscx, port: $((b + 35)), config_kb: 8}
  - {name: t-ros, hostname: ros1, device_type: mikrotik_routeros, port: $((b + 36)), config_kb: 8}
  - {name: t-icx, hostname: icx1, device_type: ruckus_fastiron, port: $((b + 37)), config_kb: 8}
  - {name: t-brc, hostname: brc1, device_type: brocade_fastiron, port: $((b + 38)), config_kb: 8}
  - {name: t-exos, hostname: x1, device_type: extreme_exos, port: $((b + 39)), config_kb: 8}
  - {name: t-vyos, hostname: vy1, device_type: vyos, port: $((b + 40)), config_kb: 8}
  - {name: t-cl, hostname: leaf1, device_type: cumulus_linux, port: $((b + 41)), config_kb: 8}
  - {name: t-saos, hostname: saos1, device_type: ciena_saos, port: $((b + 42)), config_kb: 8}
  - {name: t-sw, hostname: sw1, device_type: sonicwall_sshd, port: $((b + 43)), config_kb: 8}
  - {name: t-gaia, hostname: gw1, device_type: checkpoint_gaia, port: $((b + 44)), config_kb: 8}
  - {name: t-ftd, hostname: ftd1, device_type: cisco_ftd, port: $((b + 45)), config_kb: 8, page_lines: 10000}
  - {name: t-wlc, hostname: wlc1, device_type: cisco_wlc, port: $((b + 46)), config_kb: 8}
  # one device per real-device behaviour (device fields)
  - {name: f-prompt, hostname: pp1, port: $((b + 47)), prompt: "(%h) [standalone: master] > ", priv_prompt: "%h # "}
  - {name: f-ansi, hostname: an1, port: $((b + 48)), privileged_login: true, ansi_prompt: true}
  - {name: f-paste, hostname: pst1, device_type: linux, port: $((b + 49)), bracketed_paste: true}
  - {name: f-crcrlf, hostname: cr1, device_type: cisco_nxos, port: $((b + 50)), config_kb: 4, line_end: crcrlf}
  - {name: f-lf, hostname: lf1, device_type: cisco_nxos, port: $((b + 51)), config_kb: 4, line_end: lf}
  - {name: f-erase-bs, hostname: eb1, device_type: cisco_nxos, port: $((b + 52)), config_kb: 4, pager_erase: bs}
  - {name: f-erase-none, hostname: en1, device_type: juniper_junos, port: $((b + 53)), config_kb: 4, pager_erase: none}
  - {name: f-plog, hostname: pl1, port: $((b + 54)), config_kb: 4, privileged_login: true, pager_log: true}
  - {name: f-mid, hostname: pm1, port: $((b + 55)), config_kb: 4, privileged_login: true, pager_midline: true, volatile: false}
  - {name: f-banner, hostname: bn1, port: $((b + 56)), banner: "Welcome to the lab\nedge-router#\nfw01> "}
  - {name: f-novol, hostname: nv1, port: $((b + 57)), config_kb: 8, privileged_login: true, volatile: false}
  - {name: f-leak, hostname: lk1, port: $((b + 58)), config_kb: 8, privileged_login: true, leak_secrets: true}
  - {name: f-async, hostname: as1, port: $((b + 59)), config_kb: 8, privileged_login: true, async_log: true}
  - {name: f-plog-nx, hostname: nxl1, device_type: cisco_nxos, port: $((b + 60)), config_kb: 4, pager_log: true}
  - {name: f-fgpage, hostname: FG-1, device_type: fortinet, port: $((b + 61)), config_kb: 4}
  - {name: f-sticky, hostname: st1, port: $((b + 62)), config_kb: 4, privileged_login: true, pager_sticky: true}
EOF
}

start_devsim() {        # start_devsim NAME ARGS...; sets DS_PID
    local name=$1
    shift
    "$DEVSIM" "$@" > "$S/$name.stdout" 2> "$S/$name.stderr" &
    DS_PID=$!
    for _ in $(seq 1 100); do
        grep -q "^devsim ready" "$S/$name.stdout" 2>/dev/null && { PIDS+=("$DS_PID"); return 0; }
        kill -0 "$DS_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    kill "$DS_PID" 2>/dev/null
    return 1
}

started=1
for _ in 1 2 3 4 5; do
    B=$((20000 + (RANDOM % 400) * 20))
    write_inventory "$B"
    if start_devsim main -i "$S/inv.yaml" --state-dir "$S/state" -v; then
        started=0
        break
    fi
done
ok $started "devsim starts with $(grep -c 'port:' "$S/inv.yaml") devices and prints the ready line"
[ $started -eq 0 ] || { cat "$S/main.stderr"; echo "Bail out!"; exit 1; }
MAIN_PID=$DS_PID
check "pid file holds the pid" grep -qx "$MAIN_PID" "$S/state/devsim.pid"

# cl NAME PORT [client options...] script STEPS...: runs the client, keeps
# transcript in $S/NAME.out, stderr in $S/NAME.err, exit code in RC.
cl() {
    local name=$1 port=$2
    shift 2
    "$CLIENT" -p "$port" -P admin-pw -t "${TMO:-5000}" -o "$S/$name.out" "$@" 2> "$S/$name.err"
    RC=$?
}
step_ms() {     # step_ms NAME STEPNO: time the client reported for that step
    sed -n "s/^devsim-client: step $2 .*: \([0-9]*\) ms$/\1/p" "$S/$1.err"
}
size() { wc -c < "$1"; }
secret_lines() { grep -ciE 'password|secret|community' "$1"; }

# ---- every device type -------------------------------------------------------

# port-offset%user prompt%priv prompt%paging-off%enable (or -)%config command%hostname line
TYPES=(
    "0%ios-r1>%ios-r1#%terminal length 0%enable%show running-config%hostname ios-r1"
    "1%xe-r1>%xe-r1#%terminal length 0%enable%show running-config%hostname xe-r1"
    "2%nx-sw1#%nx-sw1#%terminal length 0%-%show running-config%hostname nx-sw1"
    "3%RP/0/RSP0/CPU0:xr-pe1#%RP/0/RSP0/CPU0:xr-pe1#%terminal length 0%-%show running-config%hostname xr-pe1"
    "4%eos-sw1>%eos-sw1#%terminal length 0%enable%show running-config%hostname eos-sw1"
    "5%admin@mx1> %admin@mx1> %set cli screen-length 0%-%show configuration | display set%set system host-name mx1"
    "6%fw1> %fw1# %terminal pager 0%enable%show running-config%hostname fw1"
    "7%admin@pa1> %admin@pa1> %set cli pager off%-%show config running%hostname pa1;"
    "8%admin@srv1:~\$ %admin@srv1:~\$ %stty -echo%-%cat /etc/netraven/device.conf%hostname = srv1"
    "9%box1#%box1#%terminal length 0%-%show running-config%hostname box1"
)
for spec in "${TYPES[@]}"; do
    IFS='%' read -r off up pp pg en cfg host <<< "$spec"
    name=type$off
    steps=("expect:$up" "line:$pg" "expect:$up")
    if [ "$en" != "-" ]; then
        steps+=("line:$en" "expect:Password: " "line:en-secret" "expect:$pp")
    fi
    steps+=("line:$cfg" "expect:$host" "expect:$pp" "line:exit" "eof")
    cl "$name" $((B + off)) script "${steps[@]}"
    t=$S/$name.out
    ok $RC "$host: login, '$pg', ${en/-/no enable}, '$cfg' ends at the prompt (rc $RC)"
    n=$(size "$t")
    [ "$n" -ge 20480 ] && [ "$n" -le 26000 ]
    ok $? "$host: config is about 20 KB ($n bytes with prompts and CRLF)"
    [ "$(secret_lines "$t")" -ge 3 ] && grep -qi community "$t" && grep -qiE 'password|secret' "$t"
    ok $? "$host: config has password/secret and community lines ($(secret_lines "$t"))"
    check "$host: lines end in CRLF" grep -q $'\r$' "$t"
    ! grep -q "en-secret" "$t"
    ok $? "$host: the enable secret is never echoed"
done
check "IOS config says 'Building configuration...' and its size" \
    grep -q "Current configuration : [0-9]* bytes" "$S/type0.out"
for l in 'enable secret 5 $1$' "username admin privilege 15 secret 5" "snmp-server community public RO" \
         "router ospf 1" " password 7 "; do
    check "IOS config has '$l'" grep -qF -- "$l" "$S/type0.out"
done
check "IOS config ends with 'end'" grep -qx $'end\r' "$S/type0.out"
check "Junos config has root-authentication and snmp community" \
    sh -c "grep -q 'set system root-authentication encrypted-password \"' '$S/type5.out' && grep -q 'set snmp community public' '$S/type5.out'"
check "Junos says 'Screen length set to 0'" grep -q "Screen length set to 0" "$S/type5.out"
check "unknown device type uses the default profile (starts privileged)" grep -q "^box1#terminal length 0" "$S/type9.out"

# ---- the other platforms ------------------------------------------------------
#
# One row per type (the types above again, for their volatile lines, then
# the others): port offset; login (plain, anykey: "Press any key",
# wlc: in-shell User:/Password:); exact first prompt; prefix every prompt
# starts with; paging command (NONE: none); config commands (,-separated);
# enable: "+" (has one) or the error it prints; its volatile lines (ERE).
# The session's config output, less the volatile lines, must equal
# --print-config; the volatile lines must be there and differ next session.
PLATFORMS=(
    "0;plain;ios-r1>;ios-r1;terminal length 0;show running-config;+;^(Current configuration : |! Last configuration change at |! NVRAM config last updated at |ntp clock-period )"
    "1;plain;xe-r1>;xe-r1;terminal length 0;show running-config;+;^(Current configuration : |! Last configuration change at |! NVRAM config last updated at |ntp clock-period )"
    "2;plain;nx-sw1#;nx-sw1#;terminal length 0;show running-config;;^!(Time: |Running configuration last done at: )"
    "3;plain;RP/0/RSP0/CPU0:xr-pe1#;RP/0/RSP0/CPU0:xr-pe1#;terminal length 0;show running-config;;^([A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}[.][0-9]{3} UTC$|!! Last configuration change at )"
    "4;plain;eos-sw1>;eos-sw1;terminal length 0;show running-config;+;^! (Time: |Startup-config last modified at )"
    "5;plain;admin@mx1> ;admin@mx1> ;set cli screen-length 0;show configuration | display set;;^## Last commit: "
    "6;plain;fw1> ;fw1;terminal pager 0;show running-config;+;^(: Written by |Cryptochecksum:)"
    "26;plain;<cmw1>;<cmw1>;screen-length disable;display current-configuration; % Unrecognized command found at '^' position.;"
    "27;anykey;pc1> ;pc1;no page;show running-config;+;"
    "28;anykey;aos1> ;aos1;no page;show running-config;+;"
    "29;plain;<hw1>;<hw1>;screen-length 0 temporary;display current-configuration;Error: Unrecognized command found at '^' position.;^!Last configuration was (updated|saved) at "
    "30;plain;FG-1 # ;FG-1 # ;NONE;get system status,show full-configuration;Unknown action 0;^(#conf_file_ver=|System time: |Cluster uptime: |Virus-DB: |Extended DB: |IPS-DB: |APP-DB: |Last reboot reason: )"
    "31;plain;admin@(f5a)(cfg-sync Standalone)(Active)(/Common)(tmos)# ;admin@(f5a);modify cli preference pager disabled display-threshold 0;show running-config;Syntax Error: \"enable\" unknown property;"
    "32;plain;os10a# ;os10a# ;terminal length 0;show running-configuration;% Error: Unrecognized command.;^! (Last configuration change|Startup-config last updated) at "
    "33;plain;os6a>;os6a;terminal length 0;show running-config;+;"
    "34;plain;os9a>;os9a;terminal length 0;show running-config;+;^! (Last configuration change|Startup-config last updated) at "
    "35;plain;cx1# ;cx1# ;no page;show running-config;Invalid input: enable;"
    "36;plain;[admin@ros1] > ;[admin@ros1] > ;NONE;/export;bad command name enable (line 1 column 1);^# [a-z]{3}/[0-9]{2}/[0-9]{4} [0-9:]{8} by RouterOS "
    "37;plain;SSH@icx1>;SSH@icx1;skip-page-display;show running-config;+;"
    "38;plain;SSH@brc1>;SSH@brc1;skip-page-display;show running-config;+;"
    "39;plain;x1.1 # ;x1.;disable clipaging;show configuration;%% Incomplete command entered.;^# .* Configuration generated "
    "40;plain;admin@vy1:~\$ ;admin@vy1:~\$ ;set terminal length 0;show configuration commands;  Invalid command: [enable];"
    "41;plain;admin@leaf1:mgmt:~\$ ;admin@leaf1:mgmt:~\$ ;NONE;net show configuration commands;enable alias;"
    "42;plain;saos1> ;saos1> ;system shell set more off;configuration show;SHELL PARSER FAILURE: 'enable';^! (Created|On terminal): "
    "43;plain;admin@sw1> ;admin@sw1> ;no cli pager session;show current-config;% No matching command found.;"
    "44;plain;gw1> ;gw1> ;set clienv rows 0;show configuration;CLINFR0329  Invalid command:'enable'.;^# Exported by "
    "45;plain;> ;> ;NONE;show running-config;Syntax error: Illegal parameter;^(: Written by |Cryptochecksum:)"
    "46;wlc;(wlc1) >;(wlc1) >;config paging disable;show run-config commands;Incorrect usage. Use the '?' or <TAB> key to list commands.;"
)
# platform_steps NAME LOGIN PREFIX PAGING CMDS ENABLE: the script into STEPS
platform_steps() {
    local name=$1 login=$2 pfx=$3 paging=$4 cmds=$5 en=$6 c
    STEPS=()
    case $login in
        anykey) STEPS+=("expect:Press any key to continue" "send:\n") ;;
        wlc) STEPS+=("expect:User: " "line:admin" "expect:Password:" "line:admin-pw") ;;
    esac
    STEPS+=("expect:$pfx")
    [ "$paging" = NONE ] || STEPS+=("line:$paging" "expect:\n$pfx")
    if [ "$en" = "+" ]; then
        STEPS+=("line:enable" "expect:Password:" "line:en-secret" "expect:\n$pfx")
    elif [ -n "$en" ]; then
        STEPS+=("line:enable" "expect:$en" "expect:\n$pfx")
    fi
    rm -f "$S/$name.cap"
    IFS=',' read -ra cl_cmds <<< "$cmds"
    for c in "${cl_cmds[@]}"; do
        STEPS+=("line:$c" "expect:$c" "expect:\n$pfx" "append:$S/$name.cap")
    done
}
# capture NAME: the captured outputs as the worker would store them (\n ends;
# the empty line some CLIs put before their prompt is not output)
capture() { { tr -d '\r' < "$S/$1.cap" | tail -c +2; echo; } | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }

for spec in "${PLATFORMS[@]}"; do
    IFS=';' read -r off login first pfx paging cmds en vol <<< "$spec"
    dev=$(awk -v p="$((B + off))" '$0 ~ "port: "p"[,}]" {sub(/.*[{]name: /, ""); sub(/,.*/, ""); print; exit}' "$S/inv.yaml")
    type=$(awk -v p="$((B + off))" '$0 ~ "port: "p"[,}]" {sub(/.*device_type: /, ""); sub(/,.*/, ""); print; exit}' "$S/inv.yaml")
    platform_steps "$type" "$login" "$pfx" "$paging" "$cmds" "$en"
    cl "$type" $((B + off)) script "${STEPS[@]}"
    case $en in
        +) en_desc="enable" ;;
        "") en_desc="no enable" ;;
        *) en_desc="enable refused" ;;
    esac
    ok $RC "$type: login, '${paging/NONE/no paging command}', $en_desc, '$cmds' (rc $RC)"
    t=$S/$type.out
    tr -d '\r' < "$t" | awk -v p="$first" 'index($0, p) == 1 { f = 1 } END { exit !f }'
    ok $? "$type: prompt '$first' at a line start"
    if [ -n "$en" ] && [ "$en" != "+" ]; then
        grep -qF -- "$en" "$t" && ! grep -q "en-secret" "$t"
        ok $? "$type: 'enable' gives '$en' and no privilege level"
    fi
    "$DEVSIM" -q -i "$S/inv.yaml" --print-config "$dev" > "$S/$type.print"
    if [ -n "$vol" ]; then
        capture "$type" | grep -vE -- "$vol" > "$S/$type.stored"
    else
        capture "$type" > "$S/$type.stored"
    fi
    cmp -s "$S/$type.stored" "$S/$type.print" && [ "$(wc -c < "$S/$type.print")" -ge 8192 ]
    ok $? "$type: its config output less its volatile lines is --print-config ($(wc -c < "$S/$type.print") bytes)"
    [ "$(secret_lines "$S/$type.print")" -ge 3 ] && grep -qi community "$S/$type.print" &&
        grep -qiE 'password|secret' "$S/$type.print"
    ok $? "$type: config has password/secret and community lines ($(secret_lines "$S/$type.print"))"
    if [ -n "$vol" ]; then
        platform_steps "$type-2" "$login" "$pfx" "$paging" "$cmds" "$en"
        cl "$type-2" $((B + off)) script "${STEPS[@]}"
        capture "$type" | grep -E -- "$vol" > "$S/$type.vol1"
        capture "$type-2" | grep -E -- "$vol" > "$S/$type.vol2"
        [ -s "$S/$type.vol1" ] && [ -s "$S/$type.vol2" ] && ! cmp -s "$S/$type.vol1" "$S/$type.vol2" &&
            ! grep -qE -- "$vol" "$S/$type.print"
        ok $? "$type: volatile lines ($(wc -l < "$S/$type.vol1")) change between sessions, not in --print-config"
    fi
done
check "ProCurve: the greeting ends with 'Press any key to continue'" grep -q $'^Press any key to continue\r$' "$S/hp_procurve.out"
check "Cisco WLC: 'User:' is echoed, the password is not" \
    sh -c "grep -q '^User: admin' '$S/cisco_wlc.out' && ! grep -q admin-pw '$S/cisco_wlc.out'"
tr -d '\r' < "$S/extreme_exos.out" | grep -o '^x1\.[0-9]* # ' | tr -d '\n' > "$S/exos.prompts"
[ "$(cat "$S/exos.prompts")" = "x1.1 # x1.2 # x1.3 # x1.4 # " ]
ok $? "EXOS: the prompt counts the commands ($(cat "$S/exos.prompts"))"
grep -q $'^FG-1 # get system status\r\r$' "$S/fortinet.out"
ok $? "FortiGate: Enter is echoed as CR CR LF"
cl fg-pager $((B + 61)) script "expect:FG-1 # " "line:show full-configuration" "expect:--More-- " "send: " "expect:--More-- " "send:q" "expect:FG-1 # "
[ $RC -eq 0 ] && grep -q $'\r         \r' "$S/fg-pager.out"
ok $? "FortiGate: pager '--More-- ' on by default, erased with CR and 9 blanks"
cl wlc-bad $((B + 46)) script "expect:User: " "line:admin" "expect:Password:" "line:nope" "expect:User: "
ok $RC "Cisco WLC: a wrong in-shell password asks 'User:' again"
cl hw-pager $((B + 29)) script "expect:<hw1>" "line:display current-configuration" "expect:  ---- More ----" "send: " "expect:---- More ----" "send:q" "expect:<hw1>"
[ $RC -eq 0 ] && grep -q $'  ---- More ----\e\[16D                \e\[16D' "$S/hw-pager.out"
ok $? "Huawei: pager '  ---- More ----' erased with ESC[16D"

# ---- device fields (real-device behaviours) ---------------------------------------

cl f-prompt $((B + 47)) script "expect:(pp1) [standalone: master] > " "line:enable" "expect:Password: " \
    "line:en-secret" "expect:pp1 # " "line:terminal length 0" "expect:pp1 # "
ok $RC "prompt / priv_prompt: '(pp1) [standalone: master] > ', then 'pp1 # '"
cl f-ansi $((B + 48)) script "expect:an1#" "line:terminal length 0" "expect:an1#"
grep -qF $'\e[1man1#\e[m ' "$S/f-ansi.out"
ok $? "ansi_prompt: the prompt is sent as ESC[1m an1# ESC[m blank"
cl f-paste $((B + 49)) script 'expect:admin@pst1:~$ ' "line:echo hi" 'expect:admin@pst1:~$ '
grep -qF $'\e[?2004hadmin@pst1:~$ ' "$S/f-paste.out" && grep -qF $'echo hi\r\n\e[?2004l\r' "$S/f-paste.out"
ok $? "bracketed_paste: ESC[?2004h before each prompt, ESC[?2004l CR after Enter"
cl f-crcrlf $((B + 50)) script "expect:cr1#" "line:terminal length 0" "expect:cr1#" "line:show running-config" "expect:\r\r\ncr1#"
n=$(grep -c $'\r\r$' "$S/f-crcrlf.out")
[ $RC -eq 0 ] && [ "$n" -gt 50 ] && ! grep -q $'[^\r]\r$' "$S/f-crcrlf.out"
ok $? "line_end crcrlf: every line ends in CR CR LF ($n lines)"
cl f-lf $((B + 51)) script "expect:lf1#" "line:terminal length 0" "expect:lf1#" "line:show running-config" "expect:\nlf1#"
[ $RC -eq 0 ] && ! grep -q $'\r' "$S/f-lf.out" && [ "$(wc -l < "$S/f-lf.out")" -gt 50 ]
ok $? "line_end lf: no CR at all"
cl f-erase-bs $((B + 52)) script "expect:eb1#" "line:show running-config" "expect:--More--" "send: " "expect:--More--" "send:q" "expect:eb1#"
[ $RC -eq 0 ] && grep -qF -- $'--More--\b\b\b\b\b\b\b\b        \b\b\b\b\b\b\b\b' "$S/f-erase-bs.out"
ok $? "pager_erase bs: NX-OS's pager (CR by default) erased with backspaces"
cl f-erase-none $((B + 53)) script "expect:admin@en1> " "line:show configuration | display set" "expect:---(more)---" "send: " "expect:---(more)---" "send:q" "expect:admin@en1> "
[ $RC -eq 0 ] && grep -q -- '---(more)---set ' "$S/f-erase-none.out"
ok $? "pager_erase none: the next page follows the pager prompt directly"
cl f-plog $((B + 54)) script "expect:pl1#" "line:show running-config" "expect: --More-- " "expect:%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up" \
    "send: " "expect: --More-- " "send:q" "expect:pl1#"
[ $RC -eq 0 ] && grep -qE $'^ --More-- \r$' "$S/f-plog.out" && grep -qE $'^\\*[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}\\.[0-9]{3}: %LINK-3-UPDOWN' "$S/f-plog.out"
ok $? "pager_log: '*Mon dd hh:mm:ss.mmm: %LINK-3-UPDOWN: ...' after the pager, before any key"
cl f-plog-nx $((B + 60)) script "expect:nxl1#" "line:show running-config" "expect:--More--" "expect:%ETHPORT-5-IF_UP" "send:q" "expect:nxl1#"
ok $RC "pager_log: NX-OS prints its own shape (%ETHPORT-5-IF_UP)"
spaces=(); for _ in $(seq 1 14); do spaces+=("expect: --More-- " "send: "); done
TMO=1500 cl f-mid $((B + 55)) script "expect:pm1#" "line:show running-config" "${spaces[@]}"
"$DEVSIM" -q -i "$S/inv.yaml" --print-config f-mid > "$S/f-mid.print"
# the pager and its erase out, CRs out: the text must join up again
sed 's/ --More-- \x08*  *\x08*//g' "$S/f-mid.out" | tr -d '\r' | sed -n '/^pm1#show running-config$/,/^end$/p' | tail -n +2 > "$S/f-mid.joined"
grep -qaE '[^ ] --More-- ' "$S/f-mid.out" && cmp -s "$S/f-mid.joined" "$S/f-mid.print"
ok $? "pager_midline: pages break inside lines, and the lines join up again after the key"
cl f-sticky $((B + 62)) script "expect:st1#" "line:terminal length 0" "expect:st1#" "line:show running-config" "expect: --More-- " "send:q" "expect:st1#"
ok $RC "pager_sticky: 'terminal length 0' is accepted and the pager stays on"
cl f-banner $((B + 56)) script "expect:bn1>"
[ $RC -eq 0 ] && grep -q $'^edge-router#\r$' "$S/f-banner.out" && grep -q $'^fw01> \r$' "$S/f-banner.out" && grep -q "Welcome to the lab" "$S/f-banner.out"
ok $? "banner: printed before the first prompt, prompt-like lines and all"
cl f-leak $((B + 58)) script "expect:lk1#" "line:terminal length 0" "expect:lk1#" "line:show running-config" 'expect:\nend' "expect:lk1#"
tr -d '\r' < "$S/f-leak.out" > "$S/f-leak.txt"
grep -q "admin-pw" "$S/f-leak.txt" && grep -q "en-secret" "$S/f-leak.txt" && grep -q "community lk7-lk1" "$S/f-leak.txt" &&
    ! grep -E "admin-pw|en-secret" "$S/f-leak.txt" | sed 's/admin-pw//g; s/en-secret//g' | grep -qiE "password|secret|community" &&
    [ "$(grep -c lk7-lk1 "$S/f-leak.txt")" -eq 1 ]
ok $? "leak_secrets: the login password and the enable secret in descriptions, 'community lk7-lk1' in one line"
cl f-async $((B + 59)) script "expect:as1#" "line:terminal length 0" "expect:as1#" "line:show running-config" 'expect:\nend' "expect:as1#"
"$DEVSIM" -q -i "$S/inv.yaml" --print-config f-async > "$S/f-async.print"
tr -d '\r' < "$S/f-async.out" | sed -n '/^as1#show running-config$/,/^end$/p' | tail -n +2 > "$S/f-async.cfg"
n=$(grep -n '%SYS-5-CONFIG_I: Configured from console by admin' "$S/f-async.cfg" | cut -d: -f1)
grep -vE '%SYS-5-CONFIG_I|^Current configuration : |^! (Last configuration change|NVRAM config last updated) at |^ntp clock-period ' "$S/f-async.cfg" > "$S/f-async.stored"
[ -n "$n" ] && [ "$n" -gt 50 ] && [ "$n" -lt $(($(wc -l < "$S/f-async.cfg") - 50)) ] && cmp -s "$S/f-async.stored" "$S/f-async.print"
ok $? "async_log: one syslog line mid-config (line ${n:-?}); without it and the volatile lines the text is --print-config"

# ---- --print-config and --set ------------------------------------------------------

"$DEVSIM" -q -i "$S/inv.yaml" --print-config ios > "$S/ios.print1"
"$DEVSIM" -q -i "$S/inv.yaml" --print-config ios > "$S/ios.print2"
cmp -s "$S/ios.print1" "$S/ios.print2" && grep -q "^snmp-server community public RO$" "$S/ios.print1" &&
    grep -q "^enable secret 5 " "$S/ios.print1" && ! grep -qE "Last configuration change|NVRAM config|^Current configuration|ntp clock-period" "$S/ios.print1" &&
    [ "$(tail -c 4 "$S/ios.print1")" = "end" ]
ok $? "--print-config: same bytes twice, secrets in clear, no volatile lines, ends in a line end"
"$DEVSIM" -q -i "$S/inv.yaml" --print-config no-such-device > /dev/null 2> "$S/print-bad.err"
[ $? -eq 1 ] && grep -q 'no device named "no-such-device"' "$S/print-bad.err"
ok $? "--print-config of an unknown name: exit 1, '$(head -c 60 "$S/print-bad.err")...'"
"$DEVSIM" --count 1 --type juniper_junos --password pw-one --enable-secret es-two --set leak_secrets=true \
    --set volatile=false --print-config dev > "$S/set.print"
grep -q "OOB console pw-one" "$S/set.print" && grep -q "Break-glass es-two" "$S/set.print" &&
    grep -q "set snmp community lk7-dev authorization read-only" "$S/set.print"
ok $? "--set leak_secrets=true works on the command line (Junos shapes)"
"$DEVSIM" --count 1 --set line_end=cr --check > /dev/null 2> "$S/set-bad.err"
[ $? -ne 0 ] && grep -q "line_end: want one of crlf, crcrlf, lf" "$S/set-bad.err"
ok $? "--set with a bad value names the allowed ones ($(head -c 70 "$S/set-bad.err"))"

# Same hostname, same bytes: fetch twice and compare (volatile lines off).
DET=("expect:nv1#" "line:terminal length 0" "expect:nv1#" "line:show running-config" 'expect:\nend' "expect:nv1#")
cl det1 $((B + 57)) script "${DET[@]}"
cl det2 $((B + 57)) script "${DET[@]}"
check "configs are deterministic (two fetches with volatile: false are identical)" cmp -s "$S/det1.out" "$S/det2.out"
"$DEVSIM" -q -i "$S/inv.yaml" --print-config f-novol > "$S/nv1.print"
tr -d '\r' < "$S/det1.out" | sed -n '/^nv1#show running-config$/,/^end$/p' | tail -n +2 > "$S/nv1.sess"
check "volatile: false: the session prints exactly --print-config" cmp -s "$S/nv1.sess" "$S/nv1.print"
kill -USR1 "$MAIN_PID"
sleep 0.2
cl det3 $((B + 57)) script "${DET[@]}"
! cmp -s "$S/det1.out" "$S/det3.out"
ok $? "SIGUSR1 changes every config (new revision)"

cl second $((B + 0)) -u backup -P backup-pw script "expect:ios-r1>"
ok $RC "a second account (backup) logs in"
cl badpw $((B + 0)) -P nope script "expect:ios-r1>"
[ $RC -eq 2 ]
ok $? "a wrong password is refused (rc $RC)"

# ---- enable, echo, errors ---------------------------------------------------

cl enable $((B + 0)) script "expect:ios-r1>" "line:show running-config" "expect:% Invalid input detected at '^' marker." \
    "expect:ios-r1>" "line:enable" "expect:Password: " "line:wrong-1" "expect:Password: " "line:wrong-2" \
    "expect:Password: " "line:wrong-3" "expect:% Bad secrets" "expect:ios-r1>" \
    "line:enable" "expect:Password: " "line:en-secret" "expect:ios-r1#" \
    "line:foo bar" "expect:% Invalid input detected" "expect:ios-r1#" "line:disable" "expect:ios-r1>" "line:exit" "eof"
ok $RC "IOS: show running-config needs enable; 3 wrong secrets give '% Bad secrets'; the right one gives '#'"
! grep -qE "wrong-|en-secret" "$S/enable.out"
ok $? "IOS: nothing typed at a Password: prompt is echoed"
grep -q $'^ios-r1#foo bar\r$' "$S/enable.out" && grep -q $'^       \\^\r$' "$S/enable.out"
ok $? "IOS: commands are echoed and the caret sits under the bad word"

cl enable-eos $((B + 4)) script "expect:eos-sw1>" "line:enable" "expect:Password: " "line:nope" "expect:% Access denied" "expect:eos-sw1>"
ok $RC "EOS: a wrong enable secret gives '% Access denied'"
cl enable-asa $((B + 6)) script "expect:fw1> " "line:enable" "expect:Password: " "line:nope" "expect:Invalid password" "expect:Password: "
ok $RC "ASA: a wrong enable secret gives 'Invalid password' and asks again"
cl junos-err $((B + 5)) script "expect:admin@mx1> " "line:frobnicate" "expect:unknown command." "expect:admin@mx1> "
ok $RC "Junos: an unknown command gives 'unknown command.'"
cl sudo $((B + 8)) script 'expect:admin@srv1:~$ ' "line:sudo -s" "expect:[sudo] password for admin: " "line:admin-pw" \
    "expect:root@srv1:~# " "line:whoami" "expect:root" "line:exit" 'expect:admin@srv1:~$ ' "line:nosuch" "expect:-bash: nosuch: command not found"
ok $RC "Linux: sudo -s with the login password gives a root prompt; unknown commands fail like bash"

# ---- pager ------------------------------------------------------------------

cl pager $((B + 10)) script "expect:pg1#" "line:show running-config" "expect: --More-- " "send: " "expect: --More-- " \
    "send:\r" "expect: --More-- " "send:q" "expect:pg1#" "line:exit" "eof"
ok $RC "pager: ' --More-- ' after a page; space, Enter and q are answered"
# newlines between pager prompts: first page 23 lines (+ greeting and echoed command),
# space 23, Enter 1
pages=$(awk 'BEGIN{RS="--More--"} {print gsub(/\n/,"&")}' "$S/pager.out" | head -3 | tr '\n' ' ')
[ "$pages" = "25 23 1 " ]
ok $? "pager: 23 lines a page, one more on Enter (saw: $pages)"
grep -q $'\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\bpg1#' "$S/pager.out"
ok $? "pager: q erases ' --More-- ' and returns to the prompt"
spaces=(); for _ in $(seq 1 12); do spaces+=("expect: --More-- " "send: "); done
TMO=2000 cl pager-all $((B + 10)) script "expect:pg1#" "line:show running-config" "${spaces[@]}"
grep -q $'^end\r$' "$S/pager-all.out" && tail -c 4 "$S/pager-all.out" | grep -q "pg1#"
ok $? "pager: spaces page through the whole config to 'end' and the prompt"
cl pager-off $((B + 10)) script "expect:pg1#" "line:terminal length 0" "expect:pg1#" "line:show running-config" "expect:pg1#" "quiet:300"
! grep -q -- "--More--" "$S/pager-off.out" && grep -q $'^end\r$' "$S/pager-off.out"
ok $? "pager: 'terminal length 0' turns it off"
cl junos-pager $((B + 5)) script "expect:admin@mx1> " "line:show configuration | display set" "expect:---(more)---" "send:q" "expect:admin@mx1> "
ok $RC "Junos: pager '---(more)---' until 'set cli screen-length 0'"

# ---- faults -----------------------------------------------------------------

cl reject $((B + 11)) script "expect:>"
[ $RC -eq 2 ]
ok $? "reject_auth: the right password is refused (rc $RC)"
cl hang-auth $((B + 12)) script "quiet:1500" "line:show running-config" "quiet:1000"
[ $RC -eq 0 ] && [ "$(size "$S/hang-auth.out")" -eq 0 ]
ok $? "hang_after_auth: logged in, then silence: no prompt, no echo (rc $RC)"
cl hang-mid $((B + 13)) script "expect:hang-mid#" "line:terminal length 0" "expect:hang-mid#" "line:show running-config" \
    "expect:Current configuration" "sleep:300" "quiet:1500"
n=$(size "$S/hang-mid.out")
[ $RC -eq 0 ] && [ "$n" -gt 8000 ] && [ "$n" -lt 14000 ] && ! grep -q $'^end\r$' "$S/hang-mid.out"
ok $? "hang_mid_output: half the config ($n bytes), then silence on an open connection (rc $RC)"
cl disc-mid $((B + 14)) script "expect:disc-mid#" "line:terminal length 0" "expect:disc-mid#" "line:show running-config" "eof"
n=$(size "$S/disc-mid.out")
[ $RC -eq 0 ] && [ "$n" -gt 8000 ] && [ "$n" -lt 14000 ] && ! grep -q $'^end\r$' "$S/disc-mid.out"
ok $? "disconnect_mid_output: half the config ($n bytes), then the connection closes (rc $RC)"
cl garbage $((B + 15)) script "expect:garbage#" "line:terminal length 0" "expect:garbage#" "line:show running-config" \
    'expect:\nend' "expect:garbage#"
LC_ALL=C grep -q '[^[:print:][:space:]]' "$S/garbage.out"
ok $? "garbage: binary bytes before prompts and inside output, and the session still works (rc $RC)"
cl banner $((B + 16)) -b "$S/banner.txt" script "expect:banner>" "line:exit" "eof"
grep -q "router#" "$S/banner.txt" && grep -q "Password:" "$S/banner.txt" && grep -q "core-rtr01#" "$S/banner.out" \
    && grep -q "Password:" "$S/banner.out" && [ $RC -eq 0 ]
ok $? "banner_prompts: the SSH banner and the MOTD hold prompt-like lines (rc $RC)"
cl kbd-pw $((B + 17)) script "expect:kbdint>"
rc_pw=$RC
cl kbd $((B + 17)) --kbdint script "expect:kbdint>"
[ $rc_pw -eq 2 ] && [ $RC -eq 0 ]
ok $? "kbdint_only: password auth refused ($rc_pw), keyboard-interactive works ($RC)"
cl trickle $((B + 18)) script "expect:trickle#" "line:show version" "expect:0x2102" "expect:trickle#"
t=$(step_ms trickle 3)
[ $RC -eq 0 ] && [ "${t:-0}" -ge 1000 ]
ok $? "trickle (2 ms a byte): show version took ${t:-?} ms"
cl refuse1 $((B + 19)) script "expect:refuse>"; r1=$RC
cl refuse2 $((B + 19)) script "expect:refuse>"; r2=$RC
cl refuse3 $((B + 19)) script "expect:refuse>"; r3=$RC
[ $r1 -eq 4 ] && [ $r2 -eq 4 ] && [ $r3 -eq 0 ]
ok $? "refuse_times 2: two connections closed at once ($r1 $r2), the third served ($r3)"
cl slowban $((B + 20)) script "expect:slowban>"
t=$(sed -n 's/^devsim-client: connected in \([0-9]*\) ms.*/\1/p' "$S/slowban.err")
[ $RC -eq 0 ] && [ "${t:-0}" -ge 650 ]
ok $? "delay_banner_ms 700: connect took ${t:-?} ms"
cl latency $((B + 21)) script "expect:latency#" "line:terminal length 0" "expect:latency#" "line:show running-config" 'expect:\nend'
t1=$(step_ms latency 3); t2=$(step_ms latency 5)
[ $RC -eq 0 ] && [ "${t1:-0}" -ge 290 ] && [ "${t2:-0}" -ge 290 ]
ok $? "latency_ms 300: each command waits ($t1 ms, $t2 ms)"
cl rate $((B + 22)) script "expect:rate#" "line:terminal length 0" "expect:rate#" "line:show running-config" 'expect:\nend'
t=$(step_ms rate 5)
[ $RC -eq 0 ] && [ "${t:-0}" -ge 350 ]
ok $? "rate_bps 40000: 20 KB took $t ms"

# ---- addresses, keys, exec ----------------------------------------------------

cl addr $((B + 0)) -H 127.3.0.1 script "expect:addr>"
ok $RC "a device on 127.3.0.1 shares its port number with one on 127.0.0.1"
cl rsa $((B + 23)) script "expect:rsa>"
ok $RC "a device with an RSA host key"
cl perdev $((B + 24)) script "expect:perdev>"
[ $RC -eq 0 ] && [ -s "$S/state/keys/perdev_ed25519_key" ]
ok $? "a device with its own host key (kept in the state dir)"
cl exec $((B + 25)) --exec "show running-config" --no-pty script eof
n=$(size "$S/exec.out")
[ $RC -eq 0 ] && [ "$n" -ge 8192 ] && grep -q "exit status 0" "$S/exec.err" && ! grep -q "ex1#" "$S/exec.out"
ok $? "exec channel: the config ($n bytes) without prompts, exit status 0"
cl exec-bad $((B + 25)) --exec "no such command" --no-pty script eof
grep -q "exit status 1" "$S/exec-bad.err" && grep -q "% Invalid command" "$S/exec-bad.out"
ok $? "exec channel: an unknown command fails with exit status 1"

# ---- the rules ----------------------------------------------------------------

"$DEVSIM" --listen 10.0.0.1 --count 1 --state-dir "$S/x" > /dev/null 2> "$S/nonloop.err"
rc=$?
[ $rc -ne 0 ] && grep -q "127.0.0.0/8" "$S/nonloop.err"
ok $? "refuses to bind outside 127.0.0.0/8 (10.0.0.1)"
"$DEVSIM" --listen 0.0.0.0 --count 1 --state-dir "$S/x" > /dev/null 2>&1
[ $? -ne 0 ]
ok $? "refuses 0.0.0.0"
printf 'devices:\n  - {name: a, port: 70000}\n' > "$S/bad.yaml"
"$DEVSIM" -i "$S/bad.yaml" --check > /dev/null 2> "$S/bad.err"
[ $? -ne 0 ] && grep -q "bad.yaml:2: port" "$S/bad.err"
ok $? "inventory errors name file:line: key ($(head -c 80 "$S/bad.err"))"
"$DEVSIM" --listen 127.1.0.1 --port 22 --vary address --count 3 --dump > "$S/dump.tsv"
[ "$(cut -f4 "$S/dump.tsv" | tail -n +2 | tr '\n' ' ')" = "127.1.0.1 127.1.0.2 127.1.0.3 " ]
ok $? "--vary address counts up addresses on one port"

# ---- SIGTERM with sessions open ------------------------------------------------

"$CLIENT" -p $((B + 12)) -P admin-pw -t 20000 script "quiet:15000" > /dev/null 2>&1 &
hung=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$MAIN_PID"
wait "$MAIN_PID"
rc=$?
t=$((($(date +%s%N) - t0) / 1000000))
[ $rc -eq 0 ] && [ $t -lt 3000 ] && [ ! -e "$S/state/devsim.pid" ]
ok $? "SIGTERM with a hung session open: exit 0 in $t ms, pid file removed"
wait "$hung" 2>/dev/null
grep -q "stats: accepted" "$S/main.stderr"
ok $? "logs counters at exit ($(grep -o 'stats: .*' "$S/main.stderr" | head -c 100))"

# ---- concurrency figure ---------------------------------------------------------

SESS=${DEVSIM_BENCH_SESSIONS:-200}
CONC=${DEVSIM_BENCH_CONCURRENCY:-200}
bench_ok=1
# Ports below the kernel's ephemeral range (32768 and up), where client
# sockets of other tests never sit; 200 in a row, another block if taken.
for _ in 1 2 3 4 5 6; do
    BB=$((10000 + (RANDOM % 50) * 200))
    if start_devsim bench --count 200 --base-port "$BB" --config-kb 20 --latency-ms 50 \
        --user admin --password pw --privileged-login --state-dir "$S/bstate" -q; then
        bench_ok=0
        break
    fi
done
if [ $bench_ok -eq 0 ]; then
    "$CLIENT" -p "$BB" -u admin -P pw -t 30000 bench -n "$SESS" -c "$CONC" -N 200 \
        --cmd "terminal length 0" --cmd "show running-config" --min-bytes 20480 \
        --devsim-pid "$DS_PID" > "$S/bench.txt" 2> "$S/bench.err"
    bench_ok=$?
    echo "# $(cat "$S/bench.txt")"
    echo "# devsim RSS after the run: $(ps -o rss= -p "$DS_PID") KB, threads: $(ps -o nlwp= -p "$DS_PID")"
fi
ok $bench_ok "$CONC concurrent sessions each fetch a 20 KB config (50 ms latency) without a failure"

echo "1..$N"
[ $FAILS -eq 0 ] || echo "# $FAILS failed"
exit $((FAILS > 0))

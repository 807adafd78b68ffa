#!/bin/bash
# shellcheck disable=SC2154  # DevStack's globals (os_VENDOR, NOVA_CONF...)
# plugin.sh - DevStack plugin of nova-lxd: Nova instances as LXD system
# containers.
#
# stack install      LXD (Debian's lxd package, or the snap on Ubuntu),
#                    this project (setup_develop)
# stack post-config  LXD initialised or joined to a cluster, the LXD
#                    project, a client certificate LXD trusts, nova.conf
#                    ([DEFAULT] compute_driver, [lxd]; nova-cpu.conf is
#                    made from it), Glance's formats
# stack extra        a busybox LXD image in Glance, example flavors, GPU
#                    flavors for the GPUs nova-lxd-gpus finds
# stack test-config  tempest's feature flags (devstack/tempest-flags.ini)
# unstack            stops this project's containers
# clean              removes what stack made in LXD, its certificate and
#                    state (LXD itself and a pool it had stay)
#
# What stack made is recorded in $NOVA_LXD_DATA_DIR/made, so that clean
# undoes exactly that.

# Save trace setting
_XTRACE_NOVA_LXD=$(set +o | grep xtrace)
set +o xtrace

NOVA_LXD_PLUGIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# LXD's folder (its unix socket is in it) for each way of installing it.
NOVA_LXD_DEB_DIR=/var/lib/lxd
NOVA_LXD_SNAP_DIR=/var/snap/lxd/common/lxd

# deb, snap or none (NOVA_LXD_INSTALL, else what the distribution has).
function nova_lxd_install_method {
    if [[ -n "$NOVA_LXD_INSTALL" ]]; then
        echo "$NOVA_LXD_INSTALL"
    elif [[ "$os_VENDOR" == "Ubuntu" ]]; then
        echo snap
    else
        echo deb
    fi
}

# LXD's folder: NOVA_LXD_LXD_DIR, else the one of the way it was installed.
function nova_lxd_dir {
    local method
    method=$(nova_lxd_install_method)
    if [[ -n "$NOVA_LXD_LXD_DIR" ]]; then
        echo "$NOVA_LXD_LXD_DIR"
    elif [[ "$method" == "snap" ]]; then
        echo $NOVA_LXD_SNAP_DIR
    elif [[ "$method" == "none" && -S $NOVA_LXD_SNAP_DIR/unix.socket ]]; then
        echo $NOVA_LXD_SNAP_DIR
    else
        echo $NOVA_LXD_DEB_DIR
    fi
}

function nova_lxd_socket {
    echo "$(nova_lxd_dir)/unix.socket"
}

# A command of LXD's (lxc, lxd) as root, against this host's LXD (the
# snap's commands are in sudo's path and know their folder).
function nova_lxd_as_root {
    if [[ -z "$NOVA_LXD_LXD_DIR" && "$(nova_lxd_install_method)" == "snap" ]]; then
        sudo "$@"
    else
        sudo LXD_DIR="$(nova_lxd_dir)" "$@"
    fi
}

function nova_lxd_lxc {
    nova_lxd_as_root lxc "$@"
}

# lxd init, lxd waitready
function nova_lxd_lxd {
    nova_lxd_as_root lxd "$@"
}

# Remember that stack made <what> (for clean).
function nova_lxd_made {
    mkdir -p "$NOVA_LXD_DATA_DIR"
    grep -qxF "$1" "$NOVA_LXD_DATA_DIR/made" 2>/dev/null ||
        echo "$1" >>"$NOVA_LXD_DATA_DIR/made"
}

function nova_lxd_was_made {
    grep -qxF "$1" "$NOVA_LXD_DATA_DIR/made" 2>/dev/null
}

# A field of LXD's GET /1.0: nova_lxd_server_info environment.certificate
function nova_lxd_server_info {
    nova_lxd_lxc query /1.0 | python3 -c 'import functools, json, sys
print(functools.reduce(lambda v, k: v.get(k) or "", sys.argv[1].split("."), json.load(sys.stdin)))' "$1"
}

# install: LXD
function install_nova_lxd_lxd {
    local method
    method=$(nova_lxd_install_method)
    case $method in
        deb)
            install_package lxd lxd-client
            sudo systemctl enable lxd.socket lxd.service
            sudo systemctl start lxd.service
            ;;
        snap)
            install_package snapd
            if ! sudo snap list lxd >/dev/null 2>&1; then
                sudo snap install lxd --channel="$NOVA_LXD_SNAP_CHANNEL"
            fi
            ;;
        none)
            ;;
        *)
            die $LINENO "NOVA_LXD_INSTALL must be deb, snap or none, not '$method'"
            ;;
    esac
    nova_lxd_lxd waitready --timeout 300 ||
        die $LINENO "LXD did not answer on $(nova_lxd_socket)"
    # nova-compute runs in group lxd (LXD_GROUP, DevStack's lxd driver
    # support), which may use LXD's socket (the packages' default group).
    if ! getent group "${LXD_GROUP:-lxd}" >/dev/null; then
        sudo groupadd --system "${LXD_GROUP:-lxd}"
    fi
    add_user_to_group "$STACK_USER" "${LXD_GROUP:-lxd}"
}

# install: this project, and what its extra phase needs
function install_nova_lxd {
    install_package busybox-static openssl
    setup_develop "$NOVA_LXD_DIR"
}

# The preseed of a fresh LXD: a new server or cluster, or a join.
function nova_lxd_preseed {
    local pool_config=""
    if [[ -n "$NOVA_LXD_STORAGE_SOURCE" ]]; then
        pool_config+="source: \"$NOVA_LXD_STORAGE_SOURCE\", "
    fi
    if [[ -n "$NOVA_LXD_STORAGE_SIZE" ]]; then
        pool_config+="size: \"$NOVA_LXD_STORAGE_SIZE\", "
    fi
    if [[ -n "$NOVA_LXD_CLUSTER_TOKEN" ]]; then
        cat <<EOF
cluster:
  enabled: true
  server_name: "$NOVA_LXD_MEMBER_NAME"
  server_address: "$NOVA_LXD_CLUSTER_ADDRESS"
  cluster_token: "$NOVA_LXD_CLUSTER_TOKEN"
EOF
        if [[ -n "$NOVA_LXD_STORAGE_SOURCE" ]]; then
            cat <<EOF
  member_config:
  - entity: storage-pool
    name: "$NOVA_LXD_STORAGE_POOL"
    key: source
    value: "$NOVA_LXD_STORAGE_SOURCE"
EOF
        fi
        return
    fi
    echo "config:"
    echo "  images.auto_update_interval: \"0\""
    if [[ -n "$NOVA_LXD_CLUSTER_ADDRESS" ]]; then
        echo "  core.https_address: \"$NOVA_LXD_CLUSTER_ADDRESS\""
    fi
    if [[ "$NOVA_LXD_CLUSTER" == "True" ]]; then
        echo "  cluster.https_address: \"$NOVA_LXD_CLUSTER_ADDRESS\""
    fi
    cat <<EOF
storage_pools:
- name: "$NOVA_LXD_STORAGE_POOL"
  driver: "$NOVA_LXD_STORAGE_DRIVER"
  config: {${pool_config%, }}
EOF
    if [[ "$NOVA_LXD_CLUSTER" == "True" ]]; then
        cat <<EOF
cluster:
  enabled: true
  server_name: "$NOVA_LXD_MEMBER_NAME"
EOF
    fi
}

# LXD 5.0.2 and older (Debian 12's) schedule no CPUs (limits.cpu) on a
# daemon that became a cluster member after it started, until it restarts
# (fixed in LXD 5.0.3): restart the LXD this plugin installed once after
# it starts or joins a cluster; running containers keep running.
function nova_lxd_restart_after_clustering {
    local version oldest
    version=$(nova_lxd_server_info environment.server_version)
    oldest=$(printf '%s\n' "$version" 5.0.3 | sort -V | head -n 1)
    if [[ "$oldest" != "$version" || "$version" == "5.0.3" ]]; then
        return 0
    fi
    if [[ "$(nova_lxd_install_method)" != "deb" ]]; then
        echo "WARNING: LXD $version applies no limits.cpu until it is restarted after joining the cluster: restart it" >&2
        return 0
    fi
    echo_summary "Restarting LXD $version once, now that it is a cluster member"
    sudo systemctl restart lxd.service
    nova_lxd_lxd waitready --timeout 300 ||
        die $LINENO "LXD did not answer after its restart"
}

# post-config: LXD initialised (or joined), the project, the certificate
function init_nova_lxd_lxd {
    local needs_address=""
    if [[ -n "$NOVA_LXD_CLUSTER_TOKEN" || "$NOVA_LXD_CLUSTER" == "True" ]]; then
        needs_address=1
    fi
    if [[ "$NOVA_LXD_ENDPOINT" == "https" ]]; then
        needs_address=1
    fi
    if [[ -n "$needs_address" && -z "$NOVA_LXD_CLUSTER_ADDRESS" ]]; then
        die $LINENO "NOVA_LXD_CLUSTER_ADDRESS (host:port) is needed to join or start a cluster, or for NOVA_LXD_ENDPOINT=https"
    fi
    if [[ -n "$NOVA_LXD_CLUSTER_TOKEN" ]]; then
        if [[ "$(nova_lxd_server_info environment.server_clustered)" != "True" ]]; then
            echo_summary "Joining the LXD cluster as $NOVA_LXD_MEMBER_NAME ($NOVA_LXD_CLUSTER_ADDRESS)"
            nova_lxd_preseed | nova_lxd_lxd init --preseed ||
                die $LINENO "could not join the LXD cluster"
            nova_lxd_made "joined"
            nova_lxd_restart_after_clustering
        fi
    elif ! nova_lxd_lxc storage show "$NOVA_LXD_STORAGE_POOL" >/dev/null 2>&1; then
        echo_summary "Initialising LXD (pool $NOVA_LXD_STORAGE_POOL, $NOVA_LXD_STORAGE_DRIVER)"
        nova_lxd_preseed | nova_lxd_lxd init --preseed ||
            die $LINENO "lxd init failed"
        nova_lxd_made "pool $NOVA_LXD_STORAGE_POOL"
        if [[ "$NOVA_LXD_CLUSTER" == "True" ]]; then
            nova_lxd_restart_after_clustering
        fi
    fi

    if ! nova_lxd_lxc project show "$NOVA_LXD_PROJECT" >/dev/null 2>&1; then
        nova_lxd_lxc project create "$NOVA_LXD_PROJECT" \
            -c features.images=true -c features.profiles=true \
            -c features.storage.volumes=true ||
            die $LINENO "could not create the LXD project $NOVA_LXD_PROJECT"
        nova_lxd_made "project $NOVA_LXD_PROJECT"
    fi

    # A client certificate LXD trusts (HTTPS, and nova-lxd-status over
    # HTTPS); LXD's own certificate, to pin it.
    local crt=$NOVA_LXD_CERT_DIR/client.crt key=$NOVA_LXD_CERT_DIR/client.key fp
    sudo install -d -o "$STACK_USER" -m 0700 "$NOVA_LXD_CERT_DIR"
    if [[ ! -s "$crt" || ! -s "$key" ]]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 \
            -nodes -sha384 -days 3650 -subj "/CN=nova-lxd $NOVA_LXD_MEMBER_NAME" \
            -addext "extendedKeyUsage=clientAuth" \
            -keyout "$key" -out "$crt" >/dev/null 2>&1 ||
            die $LINENO "openssl could not make the client certificate"
        chmod 0600 "$key"
    fi
    fp=$(openssl x509 -in "$crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
    if ! nova_lxd_lxc query "/1.0/certificates/$fp" >/dev/null 2>&1; then
        nova_lxd_lxc config trust add "$crt" --name "nova-lxd-$NOVA_LXD_MEMBER_NAME" ||
            die $LINENO "LXD would not trust $crt"
        nova_lxd_made "certificate $fp"
    fi
    nova_lxd_server_info environment.certificate >"$NOVA_LXD_CERT_DIR/server.crt"
    [[ -s "$NOVA_LXD_CERT_DIR/server.crt" ]] ||
        die $LINENO "could not read LXD's certificate"
}

# post-config: nova-compute's options. They go into nova.conf: DevStack
# makes nova-cpu.conf only when it starts nova-compute, as a copy of
# nova.conf (lib/nova, start_nova_compute), after the post-config phase.
function configure_nova_lxd {
    iniset "$NOVA_CONF" DEFAULT compute_driver lxd.LXDDriver
    case $NOVA_LXD_ENDPOINT in
        local)
            iniset "$NOVA_CONF" lxd endpoint "$(nova_lxd_socket)"
            ;;
        https)
            iniset "$NOVA_CONF" lxd endpoint "https://$NOVA_LXD_CLUSTER_ADDRESS"
            iniset "$NOVA_CONF" lxd client_cert "$NOVA_LXD_CERT_DIR/client.crt"
            iniset "$NOVA_CONF" lxd client_key "$NOVA_LXD_CERT_DIR/client.key"
            iniset "$NOVA_CONF" lxd server_cert "$NOVA_LXD_CERT_DIR/server.crt"
            ;;
        *)
            die $LINENO "NOVA_LXD_ENDPOINT must be local or https, not '$NOVA_LXD_ENDPOINT'"
            ;;
    esac
    iniset "$NOVA_CONF" lxd project "$NOVA_LXD_PROJECT"
    iniset "$NOVA_CONF" lxd storage_pool "$NOVA_LXD_STORAGE_POOL"
    iniset "$NOVA_CONF" lxd allow_privileged "$NOVA_LXD_ALLOW_PRIVILEGED"
    iniset "$NOVA_CONF" lxd allow_nesting "$NOVA_LXD_ALLOW_NESTING"
    iniset "$NOVA_CONF" lxd allow_dir_pool "$NOVA_LXD_ALLOW_DIR_POOL"
    local opt var
    for opt in members gpu_devices gpu_modes gpu_traits; do
        var=NOVA_LXD_${opt^^}
        if [[ -n "${!var}" ]]; then
            # iniset echoes the value unquoted: "*" would become the
            # names of the files here.
            set -o noglob
            iniset "$NOVA_CONF" lxd "$opt" "${!var}"
            set +o noglob
        fi
    done
    # A resize keeps the container on its member.
    iniset "$NOVA_CONF" DEFAULT allow_resize_to_same_host True
}

# post-config: Glance takes LXD images as disk_format raw, container_format
# bare. Glance's defaults allow both; add them where the lists are set.
function configure_nova_lxd_glance {
    local section option wanted value
    for section in DEFAULT image_format; do
        for option in disk_formats:raw container_formats:bare; do
            wanted=${option#*:}
            option=${option%:*}
            value=$(iniget "$GLANCE_API_CONF" "$section" "$option")
            if [[ -n "$value" && ",${value// /}," != *",$wanted,"* ]]; then
                iniset "$GLANCE_API_CONF" "$section" "$option" "$value,$wanted"
            fi
        done
    done
}

function nova_lxd_openstack {
    openstack --os-cloud devstack-admin --os-region-name="$REGION_NAME" "$@"
}

function nova_lxd_flavor {
    local name=$1
    shift
    if ! nova_lxd_openstack flavor show "$name" >/dev/null 2>&1; then
        nova_lxd_openstack flavor create "$name" "$@" >/dev/null
    fi
}

# extra: the busybox image in Glance
function init_nova_lxd_image {
    local tarball=$NOVA_LXD_DATA_DIR/$NOVA_LXD_IMAGE_NAME.tar.gz
    if ! nova_lxd_openstack image show "$NOVA_LXD_IMAGE_NAME" >/dev/null 2>&1; then
        "$NOVA_LXD_DIR/tools/busybox-image" "$tarball" ||
            die $LINENO "could not build the busybox LXD image"
        nova_lxd_openstack image create --public --disk-format raw \
            --container-format bare --file "$tarball" "$NOVA_LXD_IMAGE_NAME" >/dev/null ||
            die $LINENO "could not upload $tarball to Glance"
    fi
}

function init_nova_lxd_flavors {
    nova_lxd_flavor lxd.tiny --vcpus 1 --ram 256 --disk 1
    nova_lxd_flavor lxd.small --vcpus 1 --ram 1024 --disk 5
    nova_lxd_flavor lxd.medium --vcpus 2 --ram 4096 --disk 20 --ephemeral 10
    nova_lxd_flavor lxd.isolated --vcpus 1 --ram 1024 --disk 5 \
        --property lxd:isolated_idmap=true
    if [[ "$NOVA_LXD_ALLOW_NESTING" == "True" ]]; then
        nova_lxd_flavor lxd.nesting --vcpus 2 --ram 2048 --disk 10 \
            --property lxd:nesting=true
    fi
}

# extra: one flavor per GPU model and resource class this member offers
function init_nova_lxd_gpu_flavors {
    local gpus name line
    gpus=$(sudo "$(get_python_exec_prefix)/nova-lxd-gpus" --json \
        --member "$NOVA_LXD_MEMBER_NAME" --config-file "$NOVA_CPU_CONF") ||
        die $LINENO "nova-lxd-gpus failed"
    while read -r line; do
        [[ -n "$line" ]] || continue
        name=${line%% *}
        # shellcheck disable=SC2086  # the line is name then options
        nova_lxd_flavor "$name" ${line#* }
    done < <(python3 "$NOVA_LXD_PLUGIN_DIR/gpu-flavors.py" <<<"$gpus")
}

# test-config: what tempest may expect (devstack/tempest-flags.ini)
function configure_nova_lxd_tempest {
    local line section="" key value
    while IFS= read -r line; do
        line=${line%%#*}
        [[ "$line" =~ ^[[:space:]]*$ ]] && continue
        if [[ "$line" =~ ^\[(.*)\][[:space:]]*$ ]]; then
            section=${BASH_REMATCH[1]}
            continue
        fi
        key=$(echo "${line%%=*}" | xargs)
        value=$(echo "${line#*=}" | xargs)
        iniset "$TEMPEST_CONFIG" "$section" "$key" "$value"
    done <"$NOVA_LXD_PLUGIN_DIR/tempest-flags.ini"
}

# The instances of the project, one name a line.
function nova_lxd_instances {
    nova_lxd_lxc list --project "$NOVA_LXD_PROJECT" --format csv -c n 2>/dev/null
}

# unstack: the project's containers stop (nova-compute is stopped by
# DevStack itself); they start again with the next stack.
function stop_nova_lxd {
    local names
    names=$(nova_lxd_instances)
    if [[ -n "$names" ]]; then
        # shellcheck disable=SC2086
        nova_lxd_lxc stop --force --project "$NOVA_LXD_PROJECT" $names || true
    fi
}

# clean: what stack made, in reverse
function cleanup_nova_lxd {
    local name fp
    if nova_lxd_was_made "project $NOVA_LXD_PROJECT"; then
        for name in $(nova_lxd_instances); do
            nova_lxd_lxc delete --force --project "$NOVA_LXD_PROJECT" "$name"
        done
        for fp in $(nova_lxd_lxc image list --project "$NOVA_LXD_PROJECT" --format csv -c f); do
            nova_lxd_lxc image delete --project "$NOVA_LXD_PROJECT" "$fp"
        done
        # Custom volumes (ephemeral disks) live on one member each.
        local member target
        while read -r name member; do
            target=()
            [[ -z "$member" || "$member" == "none" ]] || target=(--target "$member")
            nova_lxd_lxc storage volume delete "$NOVA_LXD_STORAGE_POOL" "$name" \
                --project "$NOVA_LXD_PROJECT" "${target[@]}"
        done < <(nova_lxd_lxc query "/1.0/storage-pools/$NOVA_LXD_STORAGE_POOL/volumes/custom?project=$NOVA_LXD_PROJECT&recursion=1" |
            python3 -c 'import json, sys; print("".join("%s %s\n" % (v["name"], v.get("location") or "") for v in json.load(sys.stdin)), end="")')
        # LXD 5.0's profile list has no column choice: the name is first.
        for name in $(nova_lxd_lxc profile list --project "$NOVA_LXD_PROJECT" --format csv | cut -d, -f1); do
            [[ "$name" == "default" ]] ||
                nova_lxd_lxc profile delete "$name" --project "$NOVA_LXD_PROJECT"
        done
        nova_lxd_lxc project delete "$NOVA_LXD_PROJECT"
    fi
    while read -r fp; do
        nova_lxd_lxc config trust remove "$fp" || true
    done < <(sed -n 's/^certificate //p' "$NOVA_LXD_DATA_DIR/made" 2>/dev/null)
    if nova_lxd_was_made "pool $NOVA_LXD_STORAGE_POOL"; then
        nova_lxd_lxc storage delete "$NOVA_LXD_STORAGE_POOL" || true
    fi
    sudo rm -rf "$NOVA_LXD_CERT_DIR" "$NOVA_LXD_DATA_DIR"
}

if is_service_enabled n-cpu && [[ "$VIRT_DRIVER" != "lxd" ]]; then
    die $LINENO "the nova-lxd plugin needs VIRT_DRIVER=lxd in local.conf"
fi

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    if is_service_enabled n-cpu; then
        echo_summary "Installing LXD"
        install_nova_lxd_lxd
    fi
    echo_summary "Installing nova-lxd"
    install_nova_lxd
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    if is_service_enabled n-cpu; then
        echo_summary "Configuring LXD and nova-compute for nova-lxd"
        init_nova_lxd_lxd
        configure_nova_lxd
    fi
    if is_service_enabled g-api; then
        configure_nova_lxd_glance
    fi
elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    if is_service_enabled g-api; then
        echo_summary "Uploading the nova-lxd busybox image"
        init_nova_lxd_image
    fi
    if is_service_enabled n-api && [[ "$NOVA_LXD_FLAVORS" == "True" ]]; then
        echo_summary "Creating nova-lxd flavors"
        init_nova_lxd_flavors
        if is_service_enabled n-cpu; then
            init_nova_lxd_gpu_flavors
        fi
    fi
elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
    if is_service_enabled tempest; then
        echo_summary "Configuring tempest for nova-lxd"
        configure_nova_lxd_tempest
    fi
fi

if [[ "$1" == "unstack" ]]; then
    if is_service_enabled n-cpu; then
        stop_nova_lxd
    fi
fi

if [[ "$1" == "clean" ]]; then
    if is_service_enabled n-cpu; then
        cleanup_nova_lxd
    fi
fi

# Restore xtrace
$_XTRACE_NOVA_LXD
